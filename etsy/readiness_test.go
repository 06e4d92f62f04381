package etsy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/etsy"
)

// A read-modify-write keeps each offering's processing profile and the
// readiness_state_on_property array; listings without them write what
// they always did.
func TestUpdateCarriesReadinessState(t *testing.T) {
	var inv etsy.Inventory
	in := `{"products":[{"product_id":1,"sku":"A","is_deleted":false,"property_values":[],"offerings":[{"offering_id":2,"quantity":3,"is_enabled":true,"is_deleted":false,"readiness_state_id":777,"price":{"amount":1500,"divisor":100,"currency_code":"EUR"}}]}],` +
		`"price_on_property":[],"quantity_on_property":[],"sku_on_property":[],"readiness_state_on_property":[513]}`
	if err := json.Unmarshal([]byte(in), &inv); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(inv.Update())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"readiness_state_id":777`, `"readiness_state_on_property":[513]`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("update %s lacks %s", out, want)
		}
	}
	var plain etsy.Inventory
	if err := json.Unmarshal([]byte(strings.NewReplacer(`"readiness_state_id":777,`, "", `,"readiness_state_on_property":[513]`, "").Replace(in)), &plain); err != nil {
		t.Fatal(err)
	}
	out, err = json.Marshal(plain.Update())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "readiness") {
		t.Errorf("update %s of a listing without processing profiles mentions readiness", out)
	}
}
