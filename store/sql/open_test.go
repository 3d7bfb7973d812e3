package sqlstore_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	sqlstore "github.com/paymux/paymux/store/sql"
)

// Processes that start together on one new SQLite file all open it: the
// switch to WAL that opening does can find the file locked by another one
// doing the same, and must wait instead of failing with "database is
// locked". (Without the wait in Connect this fails within a few rounds.)
func TestSQLiteOpenTogetherOnANewFile(t *testing.T) {
	for round := 0; round < 30; round++ {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("r%d.db", round))
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db, err := sqlstore.OpenDB(sqlstore.SQLite, "file:"+path)
				if err != nil {
					t.Error(err)
					return
				}
				defer db.Close()
				if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t (x INTEGER)"); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		wg.Wait()
	}
}
