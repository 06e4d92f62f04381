package webapp

import "testing"

func TestParseDecimalReadsPricesAsSellersTypeThem(t *testing.T) {
	for in, want := range map[string]int64{"22.5": 2250, "22,50": 2250, "1,234.50": 123450, "1.234,50": 123450, "20": 2000, "1 234,5": 123450, "0.2": 20, "eur 3.10": 310} {
		if got, err := parseDecimal(in, "EUR"); err != nil || got != want {
			t.Errorf("%q: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"12.345", "1,2,3", "1.234.5", "-5", "+5", "", "abc", "1,23,456.00", "12.", ".5", "1e3", "1.2.3,45"} {
		if got, err := parseDecimal(in, "EUR"); err == nil {
			t.Errorf("%q: %d accepted", in, got)
		}
	}
	for in, want := range map[string]int64{"1500": 1500, "1,500": 1500} {
		if got, err := parseDecimal(in, "JPY"); err != nil || got != want {
			t.Errorf("JPY %q: %d %v", in, got, err)
		}
	}
	if _, err := parseDecimal("1500.5", "JPY"); err == nil {
		t.Error("JPY decimals accepted")
	}
}
