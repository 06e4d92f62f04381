package etsy

import (
	"context"
	"fmt"
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
	var out wire.Page[wire.Transaction]
	q := url.Values{"limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(offset)}}
	err := c.get(ctx, ts, "getShopReceiptTransactionsByShop", "/v3/application/shops/"+id(shopID)+"/transactions", q, &out)
	if err != nil {
		return TransactionsPage{}, err
	}
	txs, err := transactionsFromWire(out.Results)
	if err != nil {
		return TransactionsPage{}, fmt.Errorf("etsy getShopReceiptTransactionsByShop: %w", err)
	}
	return TransactionsPage{Count: out.Count, Results: txs}, nil
}
