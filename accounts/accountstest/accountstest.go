// Package accountstest helps tests of code that sends account e-mails
// (verification and reset links, invitations) read what was sent.
package accountstest

import (
	"testing"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/inbox"
)

// Mailer starts a mail sink on a free local port, closed when the test
// ends, and returns a mailer that sends to it with the sink itself.
func Mailer(t testing.TB) (*accounts.SMTPMailer, *inbox.Inbox) {
	t.Helper()
	box := inbox.New(0, nil)
	addr, err := box.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = box.Close() })
	mailer, err := accounts.NewSMTPMailer(accounts.SMTPConfig{Addr: addr.String(), From: "shopledger <noreply@example.test>"})
	if err != nil {
		t.Fatal(err)
	}
	return mailer, box
}
