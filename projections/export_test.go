package projections

import "strings"

// SQLLiteral exposes the literal writer of planned writes to the
// black-box tests.
func SQLLiteral(v any) (string, error) {
	var b strings.Builder
	err := appendLiteral(&b, v)
	return b.String(), err
}
