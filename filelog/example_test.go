package filelog_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/model"
)

// A replica that writes, stops, and comes back from its log.
func Example() {
	dir, err := os.MkdirTemp("", "filelog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "replica-1.log")

	m, err := model.New("replica-1", nil)
	if err != nil {
		log.Fatal(err)
	}
	l, err := filelog.Open(path, m, nil) // a new, empty log
	if err != nil {
		log.Fatal(err)
	}
	for i, city := range []string{"Lisbon", "Oslo", "Quito"} {
		if err := m.Set("city", city); err != nil { // durable when Set returns
			log.Fatal(err)
		}
		if err := m.Set(fmt.Sprint("visit-", i), city); err != nil {
			log.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	// The restart: a new Model with the same id, replayed from the log.
	m2, err := model.New("replica-1", nil)
	if err != nil {
		log.Fatal(err)
	}
	l2, err := filelog.Open(path, m2, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l2.Close()
	city, _ := m2.Get("city")
	fmt.Println("city:", city)
	fmt.Println("keys:", m2.Keys())
	fmt.Println("records:", l2.Stats().Records)
	if err := l2.Compact(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("records after compaction:", l2.Stats().Records)
	// Output:
	// city: Quito
	// keys: [city visit-0 visit-1 visit-2]
	// records: 6
	// records after compaction: 4
}
