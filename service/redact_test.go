package service_test

import (
	"strings"
	"testing"

	"github.com/shopledger/shopledger/service"
)

func TestRedactURLHidesEverySecret(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		secrets        []string
	}{
		{"no secret", "postgres://postgres@127.0.0.1:5432/shopledger?sslmode=disable",
			"postgres://postgres@127.0.0.1:5432/shopledger?sslmode=disable", nil},
		{"user and password", "postgres://app:s3cret@db:5432/ledger", "postgres://app:xxxxx@db:5432/ledger", []string{"s3cret"}},
		{"escaped password", "postgres://app:p%40ss%3Aw0rd@db/ledger", "postgres://app:xxxxx@db/ledger", []string{"p%40ss", "w0rd"}},
		{"password parameter", "postgres://app@db/ledger?password=s3cret&sslmode=require",
			"postgres://app@db/ledger?password=xxxxx&sslmode=require", []string{"s3cret"}},
		{"sslpassword parameter", "postgres://app@db/ledger?sslpassword=k3ypass&sslkey=/etc/k.pem",
			"", []string{"k3ypass"}},
		{"both forms", "postgresql://app:one@db/ledger?password=two", "", []string{"one", "two"}},
		{"token in a query string", "https://hooks.example.com/x?token=t0k3n&access_token=a2&api_key=k9&sig=s1&page=2",
			"", []string{"t0k3n", "a2", "k9", "s1"}},
		{"fragment", "https://example.com/cb#access_token=abc123", "https://example.com/cb", []string{"abc123"}},
		{"keyword DSN", "host=db port=5432 user=app password=s3cret dbname=ledger",
			"host=db port=5432 user=app password=xxxxx dbname=ledger", []string{"s3cret"}},
		{"keyword DSN, quoted", `host=db password='a \' b secret' sslpassword = k3y user=app`,
			"host=db password=xxxxx sslpassword=xxxxx user=app", []string{"secret", "k3y"}},
		{"keyword DSN, password first", "password=s3cret host=db", "password=xxxxx host=db", []string{"s3cret"}},
		{"unterminated quote", "host=db password='s3cret", "", []string{"s3cret"}},
		{"unparseable", "postgres://app:s3cret@db:port/x", "", []string{"s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := service.RedactURL(tc.in)
			if tc.want != "" && got != tc.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for _, s := range tc.secrets {
				if strings.Contains(got, s) {
					t.Errorf("RedactURL(%q) = %q shows %q", tc.in, got, s)
				}
			}
		})
	}
}
