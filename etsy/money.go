package etsy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/shopledger/shopledger/etsy/internal/wire"
)

// ErrInexactMoney means an Etsy amount/divisor pair cannot be expressed in
// whole minor units of its currency. Rounding money silently would make the
// ledger disagree with Etsy, so it is an error.
var ErrInexactMoney = errors.New("money not representable in minor units")

// Money is an amount in integer minor units of Currency (cents for USD, yen
// for JPY, fils for KWD). Etsy's {amount, divisor, currency_code} object is
// normalised into it; floats are never involved.
type Money struct {
	Amount   int64  // minor units of Currency
	Currency string // ISO 4217 code, upper case
}

// String renders "12.34 USD".
func (m Money) String() string {
	return m.Decimal() + " " + m.Currency
}

// Decimal renders the amount in major units with the currency's number of
// decimals ("12.34", "-0.05", "1500" for JPY), exactly.
func (m Money) Decimal() string {
	exp := MinorUnitExponent(m.Currency)
	neg := m.Amount < 0
	digits := strconv.FormatUint(absInt64(m.Amount), 10)
	if exp > 0 {
		if len(digits) <= exp {
			digits = strings.Repeat("0", exp-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-exp] + "." + digits[len(digits)-exp:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

func absInt64(n int64) uint64 {
	if n < 0 {
		return uint64(-(n + 1)) + 1
	}
	return uint64(n)
}

// MinorUnitExponent is the number of decimals of a currency's minor unit
// per ISO 4217. Unknown codes get 2, the common case.
func MinorUnitExponent(currency string) int {
	switch strings.ToUpper(currency) {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
		"RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}

// MoneyFromEtsy normalises Etsy's amount/divisor pair into minor units of
// the currency.
func MoneyFromEtsy(amount, divisor int64, currency string) (Money, error) {
	currency = strings.ToUpper(currency)
	if divisor <= 0 {
		if amount == 0 {
			return Money{Currency: currency}, nil
		}
		return Money{}, fmt.Errorf("money %d/%d %s: divisor must be positive: %w", amount, divisor, currency, ErrInexactMoney)
	}
	scale := int64(1)
	for range MinorUnitExponent(currency) {
		scale *= 10
	}
	if divisor == scale {
		return Money{Amount: amount, Currency: currency}, nil
	}
	num := new(big.Int).Mul(big.NewInt(amount), big.NewInt(scale))
	q, r := new(big.Int).QuoRem(num, big.NewInt(divisor), new(big.Int))
	if r.Sign() != 0 || !q.IsInt64() {
		return Money{}, fmt.Errorf("money %d/%d %s: %w", amount, divisor, currency, ErrInexactMoney)
	}
	return Money{Amount: q.Int64(), Currency: currency}, nil
}

// UnmarshalJSON decodes Etsy's {amount, divisor, currency_code}.
func (m *Money) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*m = Money{}
		return nil
	}
	// json.Number fields keep the literal text, so no float is formed.
	var w wire.Money
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode money: %w", err)
	}
	v, err := moneyFromWire(w)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

func moneyFromWire(w wire.Money) (Money, error) {
	if w == (wire.Money{}) {
		return Money{}, nil
	}
	amount, err := intFromNumber(w.Amount)
	if err != nil {
		return Money{}, fmt.Errorf("decode money amount: %w", err)
	}
	divisor, err := intFromNumber(w.Divisor)
	if err != nil {
		return Money{}, fmt.Errorf("decode money divisor: %w", err)
	}
	v, err := MoneyFromEtsy(amount, divisor, w.CurrencyCode)
	if err != nil {
		return Money{}, fmt.Errorf("decode money: %w", err)
	}
	return v, nil
}

// MarshalJSON encodes Etsy's Money object with the currency's own divisor,
// so a Money survives a round trip.
func (m Money) MarshalJSON() ([]byte, error) {
	div := int64(1)
	for range MinorUnitExponent(m.Currency) {
		div *= 10
	}
	return json.Marshal(struct {
		Amount       int64  `json:"amount"`
		Divisor      int64  `json:"divisor"`
		CurrencyCode string `json:"currency_code"`
	}{m.Amount, div, m.Currency})
}

func intFromNumber(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return v, nil
	}
	// Some encoders write integral values as 2200.0; accept those only.
	f, ok := new(big.Float).SetString(string(n))
	if !ok || !f.IsInt() {
		return 0, fmt.Errorf("%q is not an integer", n)
	}
	v, acc := f.Int64()
	if acc != big.Exact {
		return 0, fmt.Errorf("%q out of range", n)
	}
	return v, nil
}

// decimalNumber is a JSON number written from integer minor units, used for
// the float prices updateListingInventory takes without ever forming a
// float64.
type decimalNumber Money

func (d decimalNumber) MarshalJSON() ([]byte, error) {
	return []byte(Money(d).Decimal()), nil
}
