package etsy

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopledger/shopledger/etsy/internal/wire"
)

// Listing states as Etsy spells them.
const (
	ListingActive   = "active"
	ListingInactive = "inactive"
	ListingSoldOut  = "sold_out"
	ListingDraft    = "draft"
	ListingExpired  = "expired"
)

// ListingStates returns every listing state Etsy documents, the values a
// listing's state can take.
func ListingStates() []string {
	return []string{ListingActive, ListingInactive, ListingSoldOut, ListingDraft, ListingExpired}
}

// Receipt statuses as Etsy spells them.
const (
	ReceiptPaid              = "paid"
	ReceiptCompleted         = "completed"
	ReceiptOpen              = "open"
	ReceiptPaymentProcessing = "payment processing"
	ReceiptCanceled          = "canceled"
	ReceiptFullyRefunded     = "fully refunded"
	ReceiptPartiallyRefunded = "partially refunded"
)

// Me is getMe's answer: the user a token belongs to and their shop.
type Me struct {
	UserID int64
	ShopID int64
}

// Shop is the part of Etsy's Shop the ledger uses.
type Shop struct {
	ShopID             int64
	UserID             int64
	ShopName           string
	Title              string
	CurrencyCode       string
	URL                string
	IsVacation         bool
	ListingActiveCount int
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Listing is a shop listing; Inventory is set only when asked for
// (includes=Inventory, or GetListing with inventory).
type Listing struct {
	ListingID      int64
	ShopID         int64
	UserID         int64
	Title          string
	State          string
	URL            string
	Price          Money // the lowest offering price
	Quantity       int   // sum of available offering quantities
	HasVariations  bool
	SKUs           []string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastModifiedAt time.Time
	StateChangedAt time.Time // zero when Etsy sends null
	Inventory      *Inventory
}

// Inventory is a listing's product set. Etsy regenerates product and
// offering ids on every write; use Product.VariantKey for identity.
type Inventory struct {
	Products           []Product
	PriceOnProperty    []int64
	QuantityOnProperty []int64
	SKUOnProperty      []int64
	// ReadinessStateOnProperty is Etsy's processing-profile counterpart
	// of the arrays above; carried over unchanged on a write.
	ReadinessStateOnProperty []int64
}

// Product is one purchasable variant of a listing.
type Product struct {
	ProductID      int64
	SKU            string
	IsDeleted      bool
	PropertyValues []PropertyValue
	Offerings      []Offering
}

// PropertyValue is one variation property's chosen value(s).
type PropertyValue struct {
	PropertyID   int64
	PropertyName string
	ScaleID      *int64
	ScaleName    string
	ValueIDs     []int64
	Values       []string
}

// Offering is the price and stock of a product.
type Offering struct {
	OfferingID int64
	Quantity   int
	Price      Money
	IsEnabled  bool
	IsDeleted  bool
	// ReadinessStateID is the offering's processing profile, nil when
	// Etsy sends none.
	ReadinessStateID *int64
}

// Quantity is the sellable stock of a product: the quantity of its enabled,
// not deleted offerings.
func (p Product) Quantity() int {
	n := 0
	for _, o := range p.Offerings {
		if o.IsEnabled && !o.IsDeleted {
			n += o.Quantity
		}
	}
	return n
}

// VariantKey is a variant's stable identity: its SKU when set, otherwise
// the listing id plus its sorted property value ids. product_id cannot be
// used because Etsy regenerates it on every inventory write. SKU keys are
// shop-wide on purpose: a seller's SKU names one stock-keeping unit.
func (p Product) VariantKey(listingID int64) string {
	var ids []int64
	for _, pv := range p.PropertyValues {
		ids = append(ids, pv.ValueIDs...)
	}
	return variantKey(listingID, p.SKU, ids)
}

func variantKey(listingID int64, sku string, valueIDs []int64) string {
	if sku = strings.TrimSpace(sku); sku != "" {
		return "sku:" + sku
	}
	ids := slices.Clone(valueIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var b strings.Builder
	b.WriteString("listing:")
	b.WriteString(strconv.FormatInt(listingID, 10))
	if len(ids) > 0 {
		b.WriteString(":values:")
		for i, id := range ids {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(id, 10))
		}
	}
	return b.String()
}

// Receipt is a shop receipt (an order). Buyer holds personal data and is
// kept out of String and log output.
type Receipt struct {
	ReceiptID         int64
	ShopID            int64 // from the request: Etsy's receipt has no shop_id
	ReceiptType       int
	SellerUserID      int64
	BuyerUserID       int64
	Status            string
	PaymentMethod     string
	IsPaid            bool
	IsShipped         bool
	IsGift            bool
	CreatedAt         time.Time
	UpdatedAt         time.Time
	GrandTotal        Money
	Subtotal          Money
	TotalPrice        Money
	TotalShippingCost Money
	TotalTaxCost      Money
	TotalVATCost      Money
	DiscountAmt       Money
	GiftWrapPrice     Money
	Transactions      []Transaction
	Shipments         []Shipment
	Refunds           []Refund
	Buyer             BuyerDetails
}

// String summarises a receipt without any buyer data.
func (r Receipt) String() string {
	return fmt.Sprintf("receipt %d shop %d status %q total %s (%d transactions)",
		r.ReceiptID, r.ShopID, r.Status, r.GrandTotal, len(r.Transactions))
}

// LogValue keeps buyer data out of structured logs.
func (r Receipt) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("receipt_id", r.ReceiptID),
		slog.Int64("shop_id", r.ShopID),
		slog.String("status", r.Status),
		slog.String("grandtotal", r.GrandTotal.String()),
		slog.Int("transactions", len(r.Transactions)),
	)
}

// BuyerDetails is the personal data on a receipt. It is decoded because
// shipping needs it, but formatting it prints only a placeholder.
type BuyerDetails struct {
	Name             string
	Email            string
	PaymentEmail     string
	FirstLine        string
	SecondLine       string
	City             string
	State            string
	Zip              string
	CountryISO       string
	FormattedAddress string
	MessageFromBuyer string
	GiftMessage      string
}

const redacted = "[redacted]"

// String hides personal data from fmt's %v and %+v.
func (BuyerDetails) String() string { return redacted }

// GoString hides personal data from fmt's %#v.
func (BuyerDetails) GoString() string { return redacted }

// LogValue hides personal data from slog.
func (BuyerDetails) LogValue() slog.Value { return slog.StringValue(redacted) }

// Transaction is one line of a receipt: one listing purchased.
type Transaction struct {
	TransactionID   int64
	ReceiptID       int64
	ListingID       int64
	ProductID       int64
	SKU             string
	Title           string
	Quantity        int
	Price           Money // unit price
	ShippingCost    Money
	Variations      []Variation
	ProductData     []PropertyValue
	TransactionType string
	IsDigital       bool
	CreatedAt       time.Time
	PaidAt          time.Time // zero when unpaid
	ShippedAt       time.Time // zero when not shipped
}

// VariantKey identifies the variant sold, in the same form as
// Product.VariantKey, so sales match stock even after Etsy has regenerated
// product ids.
func (t Transaction) VariantKey() string {
	var ids []int64
	if len(t.ProductData) > 0 {
		for _, pv := range t.ProductData {
			ids = append(ids, pv.ValueIDs...)
		}
	} else {
		for _, v := range t.Variations {
			if v.ValueID != 0 {
				ids = append(ids, v.ValueID)
			}
		}
	}
	return variantKey(t.ListingID, t.SKU, ids)
}

// Variation is a property value the buyer chose.
type Variation struct {
	PropertyID     int64
	ValueID        int64 // 0 when Etsy sends null (custom values)
	FormattedName  string
	FormattedValue string
}

// Shipment is shipping information added to a receipt.
type Shipment struct {
	ReceiptShippingID int64
	CarrierName       string
	TrackingCode      string
	NotifiedAt        time.Time
}

// Refund is money returned to the buyer.
type Refund struct {
	Amount         Money
	CreatedAt      time.Time
	Reason         string
	NoteFromIssuer string
	Status         string
}

// ---- wire format (Etsy JSON) ----

// moneyConv converts the Money objects of one decoded answer, keeping the
// first error, so wire structs decode in one pass instead of one nested
// json.Unmarshal per Money.
type moneyConv struct{ err error }

func (c *moneyConv) of(w wire.Money) Money {
	m, err := moneyFromWire(w)
	if err != nil && c.err == nil {
		c.err = err
	}
	return m
}

func epoch(n *int64) time.Time {
	if n == nil || *n == 0 {
		return time.Time{}
	}
	return time.Unix(*n, 0).UTC()
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func shopFromWire(w wire.Shop) Shop {
	return Shop{
		ShopID: w.ShopID, UserID: w.UserID, ShopName: w.ShopName, Title: deref(w.Title),
		CurrencyCode: w.CurrencyCode, URL: w.URL, IsVacation: w.IsVacation,
		ListingActiveCount: w.ListingActiveCount,
		CreatedAt:          epoch(w.CreatedTimestamp), UpdatedAt: epoch(w.UpdatedTimestamp),
	}
}

// UnmarshalJSON decodes Etsy's ShopListing(WithAssociations).
func (l *Listing) UnmarshalJSON(b []byte) error {
	var w wire.Listing
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode listing: %w", err)
	}
	var mc moneyConv
	*l = Listing{
		ListingID: w.ListingID, ShopID: w.ShopID, UserID: w.UserID, Title: w.Title,
		State: w.State, URL: w.URL, Price: mc.of(w.Price), Quantity: w.Quantity,
		HasVariations: w.HasVariations, SKUs: deref(w.SKUs),
		CreatedAt: epoch(w.CreatedTimestamp), UpdatedAt: epoch(w.UpdatedTimestamp),
		LastModifiedAt: epoch(w.LastModifiedTimestamp), StateChangedAt: epoch(w.StateTimestamp),
	}
	if w.Inventory != nil {
		inv := inventoryFromWire(*w.Inventory, &mc)
		l.Inventory = &inv
	}
	if mc.err != nil {
		return fmt.Errorf("decode listing %d: %w", w.ListingID, mc.err)
	}
	return nil
}

func inventoryFromWire(w wire.Inventory, mc *moneyConv) Inventory {
	inv := Inventory{
		PriceOnProperty: w.PriceOnProperty, QuantityOnProperty: w.QuantityOnProperty,
		SKUOnProperty: w.SKUOnProperty, ReadinessStateOnProperty: w.ReadinessStateOnProperty,
	}
	for _, p := range w.Products {
		inv.Products = append(inv.Products, productFromWire(p, mc))
	}
	return inv
}

// UnmarshalJSON decodes Etsy's ListingInventory.
func (inv *Inventory) UnmarshalJSON(b []byte) error {
	var w wire.Inventory
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode inventory: %w", err)
	}
	var mc moneyConv
	*inv = inventoryFromWire(w, &mc)
	if mc.err != nil {
		return fmt.Errorf("decode inventory: %w", mc.err)
	}
	return nil
}

func productFromWire(w wire.Product, mc *moneyConv) Product {
	p := Product{ProductID: w.ProductID, SKU: deref(w.SKU), IsDeleted: w.IsDeleted}
	for _, o := range w.Offerings {
		p.Offerings = append(p.Offerings, Offering{
			OfferingID: o.OfferingID, Quantity: o.Quantity, Price: mc.of(o.Price),
			IsEnabled: o.IsEnabled, IsDeleted: o.IsDeleted, ReadinessStateID: o.ReadinessStateID,
		})
	}
	for _, pv := range w.PropertyValues {
		p.PropertyValues = append(p.PropertyValues, propertyValueFromWire(pv))
	}
	return p
}

func propertyValueFromWire(w wire.PropertyValue) PropertyValue {
	return PropertyValue{
		PropertyID: w.PropertyID, PropertyName: deref(w.PropertyName), ScaleID: w.ScaleID,
		ScaleName: deref(w.ScaleName), ValueIDs: w.ValueIDs, Values: w.Values,
	}
}

func receiptFromWire(w wire.Receipt, shopID int64) (Receipt, error) {
	var mc moneyConv
	r := Receipt{
		ReceiptID: w.ReceiptID, ShopID: shopID, ReceiptType: w.ReceiptType,
		SellerUserID: w.SellerUserID, BuyerUserID: w.BuyerUserID, Status: w.Status,
		PaymentMethod: w.PaymentMethod, IsPaid: w.IsPaid, IsShipped: w.IsShipped, IsGift: w.IsGift,
		CreatedAt: epoch(w.CreatedTimestamp), UpdatedAt: epoch(w.UpdatedTimestamp),
		GrandTotal: mc.of(w.Grandtotal), Subtotal: mc.of(w.Subtotal), TotalPrice: mc.of(w.TotalPrice),
		TotalShippingCost: mc.of(w.TotalShippingCost), TotalTaxCost: mc.of(w.TotalTaxCost),
		TotalVATCost: mc.of(w.TotalVATCost), DiscountAmt: mc.of(w.DiscountAmt), GiftWrapPrice: mc.of(w.GiftWrapPrice),
		Buyer: BuyerDetails{
			Name: w.Name, Email: deref(w.BuyerEmail), PaymentEmail: w.PaymentEmail,
			FirstLine: w.FirstLine, SecondLine: deref(w.SecondLine), City: w.City,
			State: deref(w.State), Zip: w.Zip, CountryISO: deref(w.CountryISO),
			FormattedAddress: w.FormattedAddress, MessageFromBuyer: deref(w.MessageFromBuyer),
			GiftMessage: w.GiftMessage,
		},
	}
	for _, t := range w.Transactions {
		r.Transactions = append(r.Transactions, transactionFromWire(t, &mc))
	}
	for _, s := range w.Shipments {
		r.Shipments = append(r.Shipments, Shipment{
			ReceiptShippingID: deref(s.ReceiptShippingID), CarrierName: s.CarrierName,
			TrackingCode: s.TrackingCode, NotifiedAt: epoch(s.ShipmentNotificationTimestamp),
		})
	}
	for _, f := range w.Refunds {
		r.Refunds = append(r.Refunds, Refund{
			Amount: mc.of(f.Amount), CreatedAt: epoch(f.CreatedTimestamp), Reason: deref(f.Reason),
			NoteFromIssuer: deref(f.NoteFromIssuer), Status: deref(f.Status),
		})
	}
	if mc.err != nil {
		return Receipt{}, fmt.Errorf("decode receipt %d: %w", w.ReceiptID, mc.err)
	}
	return r, nil
}

// transactionsFromWire converts one answer's transactions; the error is
// the first Money that does not convert.
func transactionsFromWire(ws []wire.Transaction) ([]Transaction, error) {
	var mc moneyConv
	txs := make([]Transaction, 0, len(ws))
	for _, w := range ws {
		txs = append(txs, transactionFromWire(w, &mc))
	}
	if mc.err != nil {
		return nil, mc.err
	}
	return txs, nil
}

func transactionFromWire(w wire.Transaction, mc *moneyConv) Transaction {
	t := Transaction{
		TransactionID: w.TransactionID, ReceiptID: w.ReceiptID, ListingID: deref(w.ListingID),
		ProductID: deref(w.ProductID), SKU: deref(w.SKU), Title: deref(w.Title),
		Quantity: w.Quantity, Price: mc.of(w.Price), ShippingCost: mc.of(w.ShippingCost),
		TransactionType: w.TransactionType, IsDigital: w.IsDigital,
		CreatedAt: epoch(w.CreatedTimestamp), PaidAt: epoch(w.PaidTimestamp),
		ShippedAt: epoch(w.ShippedTimestamp),
	}
	for _, v := range w.Variations {
		t.Variations = append(t.Variations, Variation{
			PropertyID: v.PropertyID, ValueID: deref(v.ValueID),
			FormattedName: v.FormattedName, FormattedValue: v.FormattedValue,
		})
	}
	for _, pv := range w.ProductData {
		t.ProductData = append(t.ProductData, propertyValueFromWire(pv))
	}
	return t
}

// InventoryUpdate is the body of updateListingInventory. Etsy replaces the
// whole product set with it, so it must hold every product.
type InventoryUpdate struct {
	Products           []ProductUpdate
	PriceOnProperty    []int64
	QuantityOnProperty []int64
	SKUOnProperty      []int64
	// ReadinessStateOnProperty is sent only when set.
	ReadinessStateOnProperty []int64
}

// ProductUpdate is one product of an InventoryUpdate.
type ProductUpdate struct {
	SKU            string
	PropertyValues []PropertyValue
	Offerings      []OfferingUpdate
}

// OfferingUpdate is one offering of a ProductUpdate.
type OfferingUpdate struct {
	Price     Money
	Quantity  int
	IsEnabled bool
	// ReadinessStateID is sent only when set, so listings without
	// processing profiles write what they always did.
	ReadinessStateID *int64
}

// Update turns an inventory read into the write Etsy expects, dropping ids
// and deleted products as Etsy's tutorial describes, so a caller can change
// a quantity and send the whole set back.
func (inv Inventory) Update() InventoryUpdate {
	u := InventoryUpdate{
		PriceOnProperty:    slices.Clone(inv.PriceOnProperty),
		QuantityOnProperty: slices.Clone(inv.QuantityOnProperty),
		SKUOnProperty:      slices.Clone(inv.SKUOnProperty),

		ReadinessStateOnProperty: slices.Clone(inv.ReadinessStateOnProperty),
	}
	for _, p := range inv.Products {
		if p.IsDeleted {
			continue
		}
		pu := ProductUpdate{SKU: p.SKU, PropertyValues: slices.Clone(p.PropertyValues)}
		for _, o := range p.Offerings {
			if o.IsDeleted {
				continue
			}
			pu.Offerings = append(pu.Offerings, OfferingUpdate{Price: o.Price, Quantity: o.Quantity, IsEnabled: o.IsEnabled, ReadinessStateID: o.ReadinessStateID})
		}
		u.Products = append(u.Products, pu)
	}
	return u
}

type wireInventoryUpdate struct {
	Products           []wireProductUpdate `json:"products"`
	PriceOnProperty    []int64             `json:"price_on_property"`
	QuantityOnProperty []int64             `json:"quantity_on_property"`
	SKUOnProperty      []int64             `json:"sku_on_property"`
	ReadinessOnProp    []int64             `json:"readiness_state_on_property,omitempty"`
}

type wireProductUpdate struct {
	SKU            *string                   `json:"sku"`
	PropertyValues []wirePropertyValueUpdate `json:"property_values"`
	Offerings      []wireOfferingUpdate      `json:"offerings"`
}

type wirePropertyValueUpdate struct {
	PropertyID   int64    `json:"property_id"`
	PropertyName string   `json:"property_name,omitempty"`
	ScaleID      *int64   `json:"scale_id,omitempty"`
	ValueIDs     []int64  `json:"value_ids"`
	Values       []string `json:"values"`
}

type wireOfferingUpdate struct {
	Price     decimalNumber `json:"price"`
	Quantity  int           `json:"quantity"`
	IsEnabled bool          `json:"is_enabled"`
	Readiness *int64        `json:"readiness_state_id,omitempty"`
}

// MarshalJSON writes Etsy's updateListingInventory body, prices as decimal
// numbers built from minor units.
func (u InventoryUpdate) MarshalJSON() ([]byte, error) {
	w := wireInventoryUpdate{
		Products:           []wireProductUpdate{},
		PriceOnProperty:    nonNil(u.PriceOnProperty),
		QuantityOnProperty: nonNil(u.QuantityOnProperty),
		SKUOnProperty:      nonNil(u.SKUOnProperty),
		ReadinessOnProp:    u.ReadinessStateOnProperty,
	}
	for _, p := range u.Products {
		wp := wireProductUpdate{PropertyValues: []wirePropertyValueUpdate{}, Offerings: []wireOfferingUpdate{}}
		if p.SKU != "" {
			wp.SKU = &p.SKU
		}
		for _, pv := range p.PropertyValues {
			wp.PropertyValues = append(wp.PropertyValues, wirePropertyValueUpdate{
				PropertyID: pv.PropertyID, PropertyName: pv.PropertyName, ScaleID: pv.ScaleID,
				ValueIDs: nonNil(pv.ValueIDs), Values: nonNil(pv.Values),
			})
		}
		for _, o := range p.Offerings {
			wp.Offerings = append(wp.Offerings, wireOfferingUpdate{
				Price: decimalNumber(o.Price), Quantity: o.Quantity, IsEnabled: o.IsEnabled, Readiness: o.ReadinessStateID,
			})
		}
		w.Products = append(w.Products, wp)
	}
	return json.Marshal(w)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
