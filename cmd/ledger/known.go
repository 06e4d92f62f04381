package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/shops"
)

// errUnknown means a command named a shop, listing, variant or seller the
// ledger does not know; nothing was written.
var errUnknown = errors.New("not known to the ledger")

// knowledge answers what the ledger knows before a command appends to the
// log on it: from the shop connections and the read models, never from the
// log itself (only eventstore reads that). Read models trail the log by
// the projector's lag, so something connected or imported a moment ago
// may not be known yet.
type knowledge struct {
	conns *shops.Store
	read  *projections.Reader
}

func newKnowledge(db *sql.DB, c *cli) (*knowledge, error) {
	conns, err := shops.NewStore(shops.Config{DB: db, Events: eventstore.New(db), Logger: c.logger}, nil)
	if err != nil {
		return nil, err
	}
	def, err := c.defaultThreshold()
	if err != nil {
		return nil, err
	}
	return &knowledge{conns: conns, read: projections.NewReader(db, projections.ReaderConfig{DefaultThreshold: def})}, nil
}

// shop describes a shop the ledger knows ("shop 7 (CeramicsByAda)"): one
// it connected, or one the shops read model has seen connected. A row the
// read model made for a shop it never saw connected does not count.
func (k *knowledge) shop(ctx context.Context, id int64) (string, bool, error) {
	if sh, err := k.conns.Get(ctx, id); err == nil {
		return fmt.Sprintf("shop %d (%s)", id, sh.Name), true, nil
	} else if !errors.Is(err, shops.ErrUnknownShop) {
		return "", false, err
	}
	sh, err := k.read.GetShop(ctx, []int64{id}, id)
	if errors.Is(err, projections.ErrNotFound) || (err == nil && sh.ConnectionState == projections.ShopUnknown) {
		return fmt.Sprintf("shop %d", id), false, nil
	}
	if err != nil {
		return "", false, err
	}
	return fmt.Sprintf("shop %d (%s)", id, sh.Name), true, nil
}

// listing describes a listing of shop that Etsy described to the ledger.
// A listing of another shop is not known for this one.
func (k *knowledge) listing(ctx context.Context, shop, id int64) (string, bool, error) {
	owner, err := k.read.ProductShop(ctx, id)
	if errors.Is(err, projections.ErrNotFound) {
		return fmt.Sprintf("listing %d", id), false, nil
	}
	if err != nil {
		return "", false, err
	}
	if owner != shop {
		return fmt.Sprintf("listing %d (of shop %d, not %d)", id, owner, shop), false, nil
	}
	p, err := k.read.GetProduct(ctx, []int64{shop}, id)
	if err != nil {
		return "", false, err
	}
	if p.Title == "" && p.State == "" {
		// Made by a stray threshold or movement, never described by Etsy.
		return fmt.Sprintf("listing %d (never imported)", id), false, nil
	}
	return fmt.Sprintf("listing %d (%q)", id, p.Title), true, nil
}

// variant describes a variant of a listing the ledger knows. When it is
// not known, the description lists the listing's variants.
func (k *knowledge) variant(ctx context.Context, shop, listing int64, key string) (string, bool, error) {
	p, err := k.read.GetProduct(ctx, []int64{shop}, listing)
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		return "", false, err
	}
	var keys []string
	for _, v := range p.Variants {
		if v.VariantKey == key && (v.Active || v.SKU != "" || v.Properties != "" || v.LastMovementAt != nil) {
			return fmt.Sprintf("variant %q", key), true, nil
		}
		if v.VariantKey != key && (v.Active || v.SKU != "" || v.Properties != "") {
			keys = append(keys, v.VariantKey)
		}
	}
	if len(keys) == 0 {
		return fmt.Sprintf("variant %q", key), false, nil
	}
	slices.Sort(keys)
	return fmt.Sprintf("variant %q (the listing has %s)", key, strings.Join(keys, ", ")), false, nil
}

// sellerShops returns the shops of an Etsy seller the ledger knows, from
// the connections and the shops read model.
func (k *knowledge) sellerShops(ctx context.Context, seller int64) ([]int64, error) {
	conns, err := k.conns.List(ctx)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, c := range conns {
		if c.UserID == seller {
			ids = append(ids, c.ShopID)
		}
	}
	read, err := k.read.SellerShopIDs(ctx, seller)
	if err != nil {
		return nil, err
	}
	for _, id := range read {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// check is a list of what a command looked for, found or not.
type check struct {
	found, missing []string
}

func (c *check) add(what string, ok bool) {
	if ok {
		c.found = append(c.found, what)
	} else {
		c.missing = append(c.missing, what)
	}
}

// err is nil when everything was found, else an errUnknown naming both.
func (c *check) err() error {
	if len(c.missing) == 0 {
		return nil
	}
	msg := "not found: " + strings.Join(c.missing, ", ")
	if len(c.found) > 0 {
		msg += "; found: " + strings.Join(c.found, ", ")
	}
	return fmt.Errorf("%w: %s; nothing was written (listings and variants come from the read models: "+
		"one imported a moment ago appears once the projector has caught up)", errUnknown, msg)
}
