package etsysim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// APIFaults make the simulator a slow or rate-limited Etsy for the calls
// a webhook receiver makes when it follows a resource_url (getShopReceipt,
// its transactions, getListing, getListingInventory, getListingProduct).
// Other calls, the control API and webhook delivery are unaffected, so
// orders keep flowing while those fetches suffer.
type APIFaults struct {
	// ResourceDelay holds each resource fetch this long (real time)
	// before it is answered.
	ResourceDelay time.Duration
	// ResourceRetryAfter, when positive, answers every resource fetch
	// 429 with retry-after of this many seconds (rounded up), as Etsy's
	// rate limiter does.
	ResourceRetryAfter time.Duration
	// DropInventoryWrites makes the next this many accepted
	// updateListingInventory calls apply the write and then drop the
	// connection without an answer, as a lost HTTP response does.
	DropInventoryWrites int
}

func (f APIFaults) validate() error {
	if f.ResourceDelay < 0 || f.ResourceRetryAfter < 0 || f.DropInventoryWrites < 0 {
		return fmt.Errorf("api faults %+v: negative duration: %w", f, ErrInvalid)
	}
	return nil
}

// apiFaultsJSON is APIFaults on the wire, durations as Go duration
// strings.
type apiFaultsJSON struct {
	ResourceDelay       string `json:"resource_delay,omitempty"`
	ResourceRetryAfter  string `json:"resource_retry_after,omitempty"`
	DropInventoryWrites int    `json:"drop_inventory_writes,omitempty"`
}

// MarshalJSON writes the durations as "20s".
func (f APIFaults) MarshalJSON() ([]byte, error) {
	return json.Marshal(apiFaultsJSON{f.ResourceDelay.String(), f.ResourceRetryAfter.String(), f.DropInventoryWrites})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *APIFaults) UnmarshalJSON(b []byte) error {
	var w apiFaultsJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = APIFaults{DropInventoryWrites: w.DropInventoryWrites}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"resource_delay", w.ResourceDelay, &f.ResourceDelay}, {"resource_retry_after", w.ResourceRetryAfter, &f.ResourceRetryAfter}} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.out = v
	}
	return nil
}

// SetAPIFaults changes the API faults for requests arriving from now on.
func (s *Sim) SetAPIFaults(f APIFaults) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("set api faults: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiFaults = f
	return nil
}

// APIFaults returns the API faults in force.
func (s *Sim) APIFaults() APIFaults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiFaults
}

// resource applies the API faults to an endpoint a resource_url points
// at. The delay is served outside the simulator's lock, so everything
// else goes on meanwhile.
func (s *Sim) resource(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		f := s.apiFaults
		switch {
		case f.ResourceRetryAfter > 0:
			s.stats.resourceThrottled++
		case f.ResourceDelay > 0:
			s.stats.resourceDelayed++
		}
		s.mu.Unlock()
		if f.ResourceRetryAfter > 0 {
			w.Header().Set("retry-after", strconv.Itoa(ceilSeconds(f.ResourceRetryAfter)))
			writeError(w, http.StatusTooManyRequests, "Exceeded per second rate limit")
			return
		}
		if f.ResourceDelay > 0 {
			t := time.NewTimer(f.ResourceDelay)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-s.ctx.Done():
				t.Stop()
				writeError(w, http.StatusServiceUnavailable, "simulator closed")
				return
			case <-t.C:
			}
		}
		h(w, r)
	}
}
