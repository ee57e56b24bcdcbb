module github.com/scuttle-go/scuttle

go 1.26

require (
	github.com/fxamacker/cbor/v2 v2.10.0
	github.com/google/go-cmp v0.7.0
)

require (
	github.com/hashicorp/yamux v0.1.2 // indirect
	github.com/x448/float16 v0.8.4 // indirect
)
