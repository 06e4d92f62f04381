package stockedits

import (
	"slices"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
)

// writePlan is one inventory write: Etsy's product set as read, with the
// commands applied, and what it changes.
type writePlan struct {
	update   etsy.InventoryUpdate
	commands []string // command ids the write carries
	keys     []string // every variant of the write
	before   map[string]int64
	expected map[string]int64
	deltas   map[string]int64 // by command id
}

// planWrite applies the commands, in order, to Etsy's inventory as read:
// quantities move by each command's delta on Etsy's current quantity (so
// sales since the seller looked are kept), prices and enabled flags are
// set; every other product, property value, SKU, price, flag and the
// *_on_property arrays are carried over unchanged. Products sharing a key
// (one SKU on several products) move together, as Etsy requires equal
// quantities for them. Commands naming a variant Etsy no longer has are
// returned as refused.
func planWrite(listingID int64, inv etsy.Inventory, cmds []events.StockEditRequested) (writePlan, []events.StockEditRequested) {
	p := writePlan{before: map[string]int64{}, expected: map[string]int64{}, deltas: map[string]int64{}}
	work := cloneInventory(inv)
	var refused []events.StockEditRequested
	for _, c := range cmds {
		idx := productsOf(listingID, work, c.VariantKey)
		if len(idx) == 0 {
			refused = append(refused, c)
			continue
		}
		was := int64(work.Products[idx[0]].Quantity())
		for _, i := range idx {
			for j := range work.Products[i].Offerings {
				o := &work.Products[i].Offerings[j]
				if o.IsDeleted {
					continue
				}
				switch c.Kind {
				case events.EditCount, events.EditReceived, events.EditCorrection:
					o.Quantity = max(0, o.Quantity+int(c.Delta))
				case events.EditPrice:
					if c.Price != nil {
						o.Price = etsy.Money{Amount: c.Price.Amount, Currency: o.Price.Currency}
					}
				case events.EditEnable:
					o.IsEnabled = true
				case events.EditDisable:
					o.IsEnabled = false
				}
			}
		}
		p.commands = append(p.commands, c.CommandID)
		p.deltas[c.CommandID] = int64(work.Products[idx[0]].Quantity()) - was
	}
	// Etsy replaces the whole product set, so every variant's quantity is
	// written: a sale of any of them between the read and the write is
	// overwritten, and all of them are checked afterwards.
	p.before = quantities(listingID, inv)
	p.expected = quantities(listingID, work)
	p.keys = sortedKeys(p.expected)
	p.update = work.Update()
	return p, refused
}

// restore takes overwritten sales off again on top of inv.
func restore(listingID int64, inv etsy.Inventory, lost map[string]int64) (etsy.InventoryUpdate, map[string]int64) {
	work := cloneInventory(inv)
	for k, n := range lost {
		for _, i := range productsOf(listingID, work, k) {
			for j := range work.Products[i].Offerings {
				o := &work.Products[i].Offerings[j]
				o.Quantity = max(0, o.Quantity-int(n))
			}
		}
	}
	return work.Update(), quantities(listingID, work)
}

func productsOf(listingID int64, inv etsy.Inventory, key string) []int {
	var out []int
	for i, pr := range inv.Products {
		if !pr.IsDeleted && pr.VariantKey(listingID) == key {
			out = append(out, i)
		}
	}
	return out
}

func cloneInventory(inv etsy.Inventory) etsy.Inventory {
	out := inv
	out.Products = make([]etsy.Product, len(inv.Products))
	for i, pr := range inv.Products {
		pr.Offerings = append([]etsy.Offering(nil), pr.Offerings...)
		out.Products[i] = pr
	}
	return out
}

// productIDs are Etsy's product ids by variant key (the first product of
// a key shared by several).
func productIDs(listingID int64, inv etsy.Inventory) map[string]int64 {
	return byVariantKey(listingID, inv, func(pr etsy.Product) int64 { return pr.ProductID })
}

// quantities are Etsy's sellable quantities by variant key (the first
// product of a key shared by several).
func quantities(listingID int64, inv etsy.Inventory) map[string]int64 {
	return byVariantKey(listingID, inv, func(pr etsy.Product) int64 { return int64(pr.Quantity()) })
}

// byVariantKey maps each variant key to value of the first live product
// with that key.
func byVariantKey(listingID int64, inv etsy.Inventory, value func(etsy.Product) int64) map[string]int64 {
	out := map[string]int64{}
	for _, pr := range inv.Products {
		if pr.IsDeleted {
			continue
		}
		k := pr.VariantKey(listingID)
		if _, ok := out[k]; !ok {
			out[k] = value(pr)
		}
	}
	return out
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
