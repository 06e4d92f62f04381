package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/service"
)

// The binary takes a message over SMTP and lists it on its page.
func TestInboxReceivesAndLists(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, service.MapEnv(map[string]string{"SHOPLEDGER_INBOX_SMTP_ADDR": "127.0.0.1:0", "SHOPLEDGER_INBOX_ADDR": "127.0.0.1:0"}), pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	sc := bufio.NewScanner(pr)
	var smtpAddr, pageURL string
	for (smtpAddr == "" || pageURL == "") && sc.Scan() {
		if m := regexp.MustCompile(`inbox smtp listening on (\S+)`).FindStringSubmatch(sc.Text()); m != nil {
			smtpAddr = m[1]
		}
		if m := regexp.MustCompile(`inbox listening on (http://\S+)`).FindStringSubmatch(sc.Text()); m != nil {
			pageURL = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	m, err := accounts.NewSMTPMailer(accounts.SMTPConfig{Addr: smtpAddr, From: "shopledger <a@example.test>", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(ctx, accounts.Message{To: "ann@example.com", Subject: "Hello <world>", Body: "Open https://app.test/verify?token=abc\n"}); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, want := range []string{"Hello &lt;world&gt;", "ann@example.com", `<a href="https://app.test/verify?token=abc">`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
}
