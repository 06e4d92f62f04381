package service

// Version names the build: `make image` stamps it from git with
// -ldflags "-X github.com/shopledger/shopledger/service.Version=...";
// a plain go build leaves "dev".
var Version = "dev"
