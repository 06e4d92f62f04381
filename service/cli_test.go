package service_test

import (
	"testing"

	"github.com/shopledger/shopledger/service"
)

func TestHelpRequested(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-h"}, true},
		{[]string{"-help"}, true},
		{[]string{"--help"}, true},
		{[]string{"--shop", "7", "--help"}, true},
		{[]string{"--", "--help"}, false},
		{[]string{"--helpful"}, false},
		{[]string{"help"}, false},
	} {
		if got := service.HelpRequested(tc.args); got != tc.want {
			t.Errorf("HelpRequested(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
