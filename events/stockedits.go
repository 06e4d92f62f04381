package events

// Stock edits: a seller's command, recorded first as a fact, then pushed
// to Etsy through an outbox. Only the push's outcome moves stock (a
// stock.adjusted appended with stock.edit_pushed, cause "edit:<id>"), so
// that the ledger's balance follows what Etsy holds.
const (
	TypeStockEditRequested   = "stock.edit_requested"
	TypeStockEditPushStarted = "stock.edit_push_started"
	TypeStockEditPushed      = "stock.edit_pushed"
	TypeStockEditFailed      = "stock.edit_failed"
)

// Kinds of stock edit.
const (
	EditCount      = "count"      // the seller counted N
	EditReceived   = "received"   // +N arrived
	EditCorrection = "correction" // ±N with a reason
	EditPrice      = "price"      // a variant's price
	EditEnable     = "enable"     // offer the variant for sale
	EditDisable    = "disable"    // stop selling the variant
)

// Reasons a correction carries.
const (
	CorrectionDamaged  = "damaged"
	CorrectionLost     = "lost"
	CorrectionFound    = "found"
	CorrectionReturned = "returned"
)

// StockEditRequested is a seller's command on one variant, as recorded
// before anything is sent to Etsy. Delta is the stock change decided at
// command time: a count of N is N minus the ledger's balance then, so a
// sale recorded after the count is kept when the push applies the delta
// to Etsy's current quantity.
type StockEditRequested struct {
	CommandID  string `json:"command_id"`
	Kind       string `json:"kind"`
	ShopID     int64  `json:"shop_id"`
	ListingID  int64  `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	// Quantity is what the seller entered: the count, the units
	// received, or the signed correction.
	Quantity int64 `json:"quantity,omitempty"`
	// BalanceAtCommand is the ledger's balance the delta was computed
	// against.
	BalanceAtCommand int64  `json:"balance_at_command"`
	Delta            int64  `json:"delta"`
	Price            *Money `json:"price,omitempty"`
	Reason           string `json:"reason,omitempty"`
	SupplierRef      string `json:"supplier_ref,omitempty"`
	Note             string `json:"note,omitempty"`
	Actor            string `json:"actor"`
	RequestID        string `json:"request_id"`
}

// StockEditPushStarted is recorded just before an inventory write is
// sent. While it is open (no pushed or failed for its attempt), Etsy's
// quantity of the variants it names may or may not include the write, so
// observations leave their balances alone; and if the answer is lost the
// next attempt recognises whether the write landed: Etsy regenerates
// every product id on a write, so ids other than ProductIDsBefore mean it
// did.
type StockEditPushStarted struct {
	CommandIDs []string `json:"command_ids"`
	Attempt    int      `json:"attempt"`
	ListingID  int64    `json:"listing_id"`
	// VariantKeys are the variants the write carries: all of the
	// listing's, since Etsy replaces the whole product set.
	VariantKeys []string `json:"variant_keys"`
	// ProductIDsBefore are the ids Etsy showed in the read the write
	// is built on, by variant key.
	ProductIDsBefore map[string]int64 `json:"product_ids_before"`
	// QuantitiesBefore and Expected are Etsy's sellable quantity of
	// every variant in that read and as the write sets it.
	QuantitiesBefore map[string]int64 `json:"quantities_before"`
	Expected         map[string]int64 `json:"expected"`
	// CommandDeltas is the sellable-stock change each command makes in
	// this write (a count or correction Etsy's stock cannot absorb is
	// cut at zero; a disable takes the variant's stock off sale).
	CommandDeltas map[string]int64 `json:"command_deltas"`
	// TransactionCount is the shop's number of Etsy transactions at the
	// read: sales after it and before the write landed are found by it.
	TransactionCount int64 `json:"transaction_count"`
}

// StockEditPushed is Etsy's answer to a push: the quantities it holds
// after the write and the new product ids. The stock.adjusted movements
// it caused are appended with it.
type StockEditPushed struct {
	CommandIDs []string `json:"command_ids"`
	Attempt    int      `json:"attempt"`
	ListingID  int64    `json:"listing_id"`
	// Quantities and ProductIDs are Etsy's, by variant key, for every
	// variant of the listing.
	Quantities map[string]int64 `json:"quantities"`
	ProductIDs map[string]int64 `json:"product_ids"`
	// Deltas are the sellable-stock changes the push made, by variant.
	Deltas map[string]int64 `json:"deltas,omitempty"`
	// Recovered is true when the answer was lost and a later read showed
	// the write had landed.
	Recovered bool `json:"recovered,omitempty"`
	// LostSalesRestored counts sales Etsy took between the read and the
	// write, which the write overwrote, and a follow-up write took off
	// again, by variant.
	LostSalesRestored map[string]int64 `json:"lost_sales_restored,omitempty"`
}

// StockEditFailed is a push Etsy refused or that could not be sent.
// Retryable failures stay queued; the others are final and change
// nothing at Etsy.
type StockEditFailed struct {
	CommandIDs []string `json:"command_ids"`
	Attempt    int      `json:"attempt"`
	ListingID  int64    `json:"listing_id"`
	// Code is a short cause: etsy_refused, reauth_required, not_connected,
	// rate_limited, etsy_unavailable, variant_gone, zero_stock.
	Code string `json:"code"`
	// Message is Etsy's message when Etsy answered.
	Message   string `json:"message"`
	Status    int    `json:"status,omitempty"`
	Retryable bool   `json:"retryable"`
}

func (StockEditRequested) EventType() string   { return TypeStockEditRequested }
func (StockEditPushStarted) EventType() string { return TypeStockEditPushStarted }
func (StockEditPushed) EventType() string      { return TypeStockEditPushed }
func (StockEditFailed) EventType() string      { return TypeStockEditFailed }

func init() {
	register(1, StockEditRequested{})
	register(1, StockEditPushStarted{})
	register(1, StockEditPushed{})
	register(1, StockEditFailed{})
}
