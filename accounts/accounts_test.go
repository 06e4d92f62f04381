package accounts_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/accounts/accountstest"
	"github.com/shopledger/shopledger/inbox"
	"github.com/shopledger/shopledger/pgtest"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type harness struct {
	store *accounts.Store
	inbox *inbox.Inbox
	clock *clock
	used  map[int]bool // messages whose link was taken
}

// cheap are argon2id costs for tests: the parameters are what is tested,
// not the work.
var cheap = accounts.Argon2Params{MemoryKiB: 64, Iterations: 1, Threads: 1}

func newHarness(t *testing.T) *harness {
	t.Helper()
	db := pgtest.New(t)
	mailer, box := accountstest.Mailer(t)
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s, err := accounts.New(accounts.Config{DB: db.DB, Mailer: mailer, BaseURL: "http://app.test", Argon2: cheap, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{store: s, inbox: box, clock: c, used: map[int]bool{}}
}

var linkRE = regexp.MustCompile(`http://app\.test(/[a-z/]+)\?token=([A-Za-z0-9_-]+)`)

// link waits for a message to addr, not looked at before, whose subject
// contains subject, and returns the token in its link.
func (h *harness) link(t *testing.T, addr, subject string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := h.inbox.WaitFor(ctx, func(m inbox.Message) bool {
		return len(m.To) == 1 && m.To[0] == addr && strings.Contains(m.Subject, subject) && !h.used[m.ID]
	})
	if err != nil {
		t.Fatal(err)
	}
	h.used[m.ID] = true
	got := linkRE.FindStringSubmatch(m.Body)
	if got == nil {
		t.Fatalf("no link in %q", m.Body)
	}
	return got[2]
}

func (h *harness) signUp(t *testing.T, email string) accounts.User {
	t.Helper()
	ctx := context.Background()
	if err := h.store.SignUp(ctx, accounts.SignUp{Email: email, Password: "correct horse battery", DisplayName: "Ann"}, accounts.Client{Address: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	u, err := h.store.Verify(ctx, h.link(t, email, "Verify"), accounts.Client{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPasswordPolicyGivesReasons(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ pw, want string }{
		{"short", "at least 10"},
		{"password123", "leaked"},
		{"QwertyUiop", "leaked"},
		{"aaaaaaaaaaaa", "single character"},
		{"ann.smith@example.com", "e-mail"},
	} {
		err := accounts.CheckNewPassword(tc.pw, "ann.smith@example.com")
		if !errors.Is(err, accounts.ErrWeakPassword) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckNewPassword(%q) = %v, want a refusal saying %q", tc.pw, err, tc.want)
		}
	}
	if err := accounts.CheckNewPassword("correct horse battery", "ann@example.com"); err != nil {
		t.Errorf("a long uncommon password was refused: %v", err)
	}
}

func TestUnverifiedCannotLogInAndVerificationLinkWorksOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if err := h.store.SignUp(ctx, accounts.SignUp{Email: "Ann@Example.com", Password: "correct horse battery"}, accounts.Client{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Login(ctx, "ann@example.com", "correct horse battery", accounts.Client{Address: "192.0.2.1"}); !errors.Is(err, accounts.ErrNotVerified) {
		t.Fatalf("login before verifying = %v, want ErrNotVerified", err)
	}
	token := h.link(t, "Ann@Example.com", "Verify")
	if _, err := h.store.Verify(ctx, token, accounts.Client{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Verify(ctx, token, accounts.Client{}); !errors.Is(err, accounts.ErrLinkInvalid) {
		t.Fatalf("second use of the link = %v, want ErrLinkInvalid", err)
	}
	if _, err := h.store.Login(ctx, "ANN@example.com", "correct horse battery", accounts.Client{Address: "192.0.2.1"}); err != nil {
		t.Fatalf("login after verifying: %v", err)
	}
}

func TestResetLinkIsSingleUseAndExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.signUp(t, "bo@example.com")
	c := accounts.Client{Address: "192.0.2.9"}

	if err := h.store.RequestReset(ctx, "bo@example.com", c); err != nil {
		t.Fatal(err)
	}
	token := h.link(t, "bo@example.com", "Reset")
	if _, err := h.store.ResetPassword(ctx, token, "short", c); !errors.Is(err, accounts.ErrWeakPassword) {
		t.Fatalf("weak password through reset = %v", err)
	}
	if _, err := h.store.ResetPassword(ctx, token, "a brand new secret", c); err != nil {
		t.Fatalf("reset after a refused password (the link must survive it): %v", err)
	}
	if _, err := h.store.ResetPassword(ctx, token, "another new secret", c); !errors.Is(err, accounts.ErrLinkInvalid) {
		t.Fatalf("second use = %v, want ErrLinkInvalid", err)
	}
	if _, err := h.store.Login(ctx, "bo@example.com", "a brand new secret", c); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}

	if err := h.store.RequestReset(ctx, "bo@example.com", c); err != nil {
		t.Fatal(err)
	}
	late := h.link(t, "bo@example.com", "Reset")
	h.clock.t = h.clock.t.Add(time.Hour + time.Second)
	if _, err := h.store.ResetPassword(ctx, late, "yet another secret", c); !errors.Is(err, accounts.ErrLinkInvalid) {
		t.Fatalf("expired link = %v, want ErrLinkInvalid", err)
	}
	// Unknown addresses get the same answer and no e-mail.
	if err := h.store.RequestReset(ctx, "nobody@example.com", c); err != nil {
		t.Fatalf("reset for an unknown address = %v, want the same answer as for a known one", err)
	}
}

func TestLoginThrottleSlowsThenLocksThenLets(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.signUp(t, "cy@example.com")
	c := accounts.Client{Address: "198.51.100.7"}
	var lastWait time.Duration
	for i := 1; i <= 10; i++ {
		_, err := h.store.Login(ctx, "cy@example.com", "wrong password!", c)
		if wait, ok := accounts.IsThrottled(err); ok {
			t.Fatalf("attempt %d throttled before it could be tried (wait %s)", i, wait)
		}
		if !errors.Is(err, accounts.ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
		// The next attempt right away must be refused once past the free ones.
		_, err = h.store.Login(ctx, "cy@example.com", "correct horse battery", c)
		wait, throttled := accounts.IsThrottled(err)
		if i <= 3 {
			if err != nil {
				t.Fatalf("after %d failures the right password: %v", i, err)
			}
			continue
		}
		if !throttled {
			t.Fatalf("after %d failures the next attempt was not throttled: %v", i, err)
		}
		if wait < lastWait {
			t.Fatalf("after %d failures the wait shrank: %s < %s", i, wait, lastWait)
		}
		lastWait = wait
		h.clock.t = h.clock.t.Add(wait)
	}
	if lastWait != 15*time.Minute {
		t.Fatalf("after 10 failures the lock is %s, want 15m", lastWait)
	}
	// The same throttle applies to an unregistered address: the answer
	// reveals nothing.
	for range 4 {
		_, _ = h.store.Login(ctx, "ghost@example.com", "wrong password!", accounts.Client{Address: "203.0.113.1"})
	}
	if _, ok := accounts.IsThrottled(func() error {
		_, err := h.store.Login(ctx, "ghost@example.com", "wrong password!", accounts.Client{Address: "203.0.113.2"})
		return err
	}()); !ok {
		t.Fatal("an unregistered address is not throttled like a registered one")
	}
	// The lock ends: the right password works once it has run out.
	if _, err := h.store.Login(ctx, "cy@example.com", "correct horse battery", c); err != nil {
		t.Fatalf("after the lock window: %v", err)
	}
}

func TestLastOwnerStaysAndInvitationWorksOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	owner := h.signUp(t, "owner@example.com")
	staff := h.signUp(t, "staff@example.com")
	sessID, err := h.store.NewSession(ctx, owner.ID, 0, accounts.Client{})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := h.store.Session(ctx, sessID)
	if err != nil {
		t.Fatal(err)
	}
	a := sess.Actor(accounts.Client{Address: "192.0.2.3"})
	if a.Role != accounts.RoleOwner || a.OrgID == 0 {
		t.Fatalf("new user's session acts as %q in %d, want owner of their organisation", a.Role, a.OrgID)
	}
	if err := h.store.RemoveMember(ctx, a, owner.ID); !errors.Is(err, accounts.ErrLastOwner) {
		t.Fatalf("last owner leaving = %v, want ErrLastOwner", err)
	}
	if err := h.store.ChangeRole(ctx, a, owner.ID, accounts.RoleStaff); !errors.Is(err, accounts.ErrLastOwner) {
		t.Fatalf("last owner demoted = %v, want ErrLastOwner", err)
	}
	if _, err := h.store.Invite(ctx, a, "staff@example.com", accounts.RoleStaff); err != nil {
		t.Fatal(err)
	}
	token := h.link(t, "staff@example.com", "invited")
	if _, err := h.store.AcceptInvitation(ctx, token, owner, accounts.Client{}); !errors.Is(err, accounts.ErrForbidden) {
		t.Fatalf("accepting someone else's invitation = %v, want ErrForbidden", err)
	}
	if _, err := h.store.AcceptInvitation(ctx, token, staff, accounts.Client{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.AcceptInvitation(ctx, token, staff, accounts.Client{}); !errors.Is(err, accounts.ErrLinkInvalid) {
		t.Fatalf("second acceptance = %v, want ErrLinkInvalid", err)
	}
	members, err := h.store.Members(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 || members[1].User.ID != staff.ID || members[1].Role != accounts.RoleStaff {
		t.Fatalf("members = %+v, want the owner and the new staff member", members)
	}
	trail, err := h.store.AuditTrail(ctx, a.OrgID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range trail {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{accounts.ActionInvited, accounts.ActionInvitationAccepted, accounts.ActionOrgCreated, accounts.ActionSignUp} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("audit trail %v lacks %s", actions, want)
		}
	}
}
