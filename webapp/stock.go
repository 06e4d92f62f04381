package webapp

import "github.com/go-chi/chi/v5"

// stockRoutes registers the stock pages: dashboard figures, products,
// variants and their history.
func (a *app) stockRoutes(r chi.Router) {}
