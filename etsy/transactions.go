package etsy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/shopledger/shopledger/etsy/internal/wire"
)

// TransactionsPage is one page of a shop's transactions, newest first.
// Count is the shop's total: transactions are never removed, so it only
// grows, and a change in it means a sale happened.
type TransactionsPage struct {
	Count   int
	Results []Transaction
}

// GetShopTransactions returns one page (limit 1 to 100, offset from 0)
// of getShopReceiptTransactionsByShop, newest first.
func (c *Client) GetShopTransactions(ctx context.Context, ts TokenSource, shopID int64, limit, offset int) (TransactionsPage, error) {
	if limit < 1 || limit > MaxLimit || offset < 0 || offset > MaxOffset {
		return TransactionsPage{}, fmt.Errorf("etsy getShopReceiptTransactionsByShop: limit %d offset %d out of range", limit, offset)
	}
	var out struct {
		Count   int                `json:"count"`
		Results []wire.Transaction `json:"results"`
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(offset)}}
	err := c.do(ctx, call{
		op: "getShopReceiptTransactionsByShop", method: http.MethodGet,
		path: "/v3/application/shops/" + id(shopID) + "/transactions", query: q, ts: ts, idempotent: true,
	}, &out)
	if err != nil {
		return TransactionsPage{}, err
	}
	var mc moneyConv
	p := TransactionsPage{Count: out.Count, Results: make([]Transaction, 0, len(out.Results))}
	for _, w := range out.Results {
		p.Results = append(p.Results, transactionFromWire(w, &mc))
	}
	if mc.err != nil {
		return TransactionsPage{}, fmt.Errorf("etsy getShopReceiptTransactionsByShop: %w", mc.err)
	}
	return p, nil
}
