package service

// HelpRequested reports whether a command line asks for help: -h, -help
// or --help anywhere among its flags (a "--" ends them). Binaries check it
// before they read any setting or open anything, so that help always
// works, even on a machine with nothing configured.
func HelpRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}
