// Package defaults fills in the settings a component's caller left out.
package defaults

import "cmp"

// Positive sets *v to def unless *v is above zero: a count, a size or a
// duration that is zero (left out) or negative (meaningless) takes the
// component's default.
func Positive[T cmp.Ordered](v *T, def T) {
	var zero T
	if *v <= zero {
		*v = def
	}
}
