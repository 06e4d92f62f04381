package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopledger/shopledger/accounts"
)

func init() {
	commands["accounts"] = command{
		summary: "add users to organisations, lift login locks, list account e-mails",
		usage:   accountsUsage,
		subs: map[string]func(context.Context, *cli, []string) error{
			"add-user": accountsAddUser, "unlock": accountsUnlock, "mail": accountsMail,
		},
	}
}

const accountsUsage = `ledger accounts add-user --email <address> (--seller <etsy user id> | --org <id>) [--role owner|staff|auditor] [--name text] [--timezone Area/City] [--password-file path|-]
ledger accounts unlock --email <address>
ledger accounts mail [--limit 50]

  add-user  makes the user a member of the organisation with the role
            (default owner), creating them, verified, with the password
            read from the first line of standard input when the address
            is new (--password-file, default standard input). --seller names the organisation of an Etsy seller
            (made on first use, as a token by seller id is).
  unlock    lifts the login lock of an account at once, for an owner who
            cannot wait for it to end (a password reset lifts it too).
  mail      lists the verification, reset and invitation e-mails, newest
            first, and whether each was sent or is pending.
` + usageEnv

func accountsAddUser(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("accounts add-user")
	email := fs.String("email", "", "the user's login address (required)")
	seller := fs.Int64("seller", 0, "Etsy user id whose organisation the user joins")
	org := fs.Int64("org", 0, "organisation id the user joins")
	role := fs.String("role", "owner", "owner, staff or auditor")
	name := fs.String("name", "", "display name")
	tz := fs.String("timezone", "UTC", "IANA time zone")
	pwFile := fs.String("password-file", "-", "file whose first line is the new user's password; - reads standard input")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *email == "" || (*seller == 0) == (*org == 0) {
		return fmt.Errorf("%w: --email and one of --seller or --org are required", errUsage)
	}
	r, err := accounts.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	store, closeDB, err := c.openAccounts(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	if *seller != 0 {
		if *org, err = store.OrganisationOfSeller(ctx, *seller); err != nil {
			return err
		}
	}
	in := io.Reader(os.Stdin)
	if *pwFile != "-" {
		f, err := os.Open(*pwFile)
		if err != nil {
			return fmt.Errorf("password file: %w", err)
		}
		defer f.Close()
		in = f
	}
	password, err := readLine(in)
	if err != nil {
		return err
	}
	u, created, err := store.AddUser(ctx, accounts.OperatorUser{Email: *email, Password: password, DisplayName: *name, Timezone: *tz, OrgID: *org, Role: r})
	if err != nil {
		return err
	}
	verb := "added"
	if created {
		verb = "created"
	}
	fmt.Fprintf(c.stdout, "%s user %s (%s) as %s of organisation %d\n", verb, u.Email, u.ID, r, *org)
	return nil
}

// openAccounts opens the database and the accounts over it. The ledger
// sends no e-mail, so links need no real base URL.
func (c *cli) openAccounts(ctx context.Context) (*accounts.Store, func(), error) {
	db, closeDB, err := c.openDB(ctx)
	if err != nil {
		return nil, nil, err
	}
	store, err := accounts.New(accounts.Config{DB: db, Logger: c.logger, BaseURL: "http://localhost"})
	if err != nil {
		closeDB()
		return nil, nil, err
	}
	return store, closeDB, nil
}

// readLine reads the first line of r, without its line ending.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func accountsUnlock(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("accounts unlock")
	email := fs.String("email", "", "the account's login address (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *email == "" {
		return fmt.Errorf("%w: --email is required", errUsage)
	}
	store, closeDB, err := c.openAccounts(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	if err := store.Unlock(ctx, *email); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "login lock of %s lifted\n", *email)
	return nil
}

func accountsMail(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("accounts mail")
	limit := fs.Int("limit", 50, "how many e-mails to list")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	store, closeDB, err := c.openAccounts(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	mail, err := store.Mail(ctx, *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN\tTO\tKIND\tSTATUS\tDETAIL")
	for _, m := range mail {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.CreatedAt.UTC().Format(time.RFC3339), m.Recipient, m.Kind, m.Status, m.Detail)
	}
	return tw.Flush()
}
