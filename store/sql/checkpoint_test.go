package sqlstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckpointsAside(t *testing.T) {
	for dsn, want := range map[string]bool{
		"file:/tmp/a.db": true,
		"file:/tmp/a.db?_pragma=synchronous(NORMAL)":     true,
		"file:/tmp/a.db?_pragma=wal_autocheckpoint(500)": false, // the DSN decides
		"file:/tmp/a.db?_pragma=journal_mode(DELETE)":    false, // no log to checkpoint
		":memory:":                        false,
		"file:x?mode=memory&cache=shared": false,
	} {
		if got := checkpointsAside(sqliteDSN(dsn)); got != want {
			t.Errorf("checkpointsAside(%q) = %v, want %v", dsn, got, want)
		}
	}
	if got := withBackstopCheckpoint("file:a.db"); got != "file:a.db?_pragma=wal_autocheckpoint(20000)" {
		t.Errorf("withBackstopCheckpoint = %q", got)
	}
}

// Commits reach the database file while the pool's connection goes on
// writing, although its own automatic checkpoint is far off; closing the DB
// stops the checkpointer.
func TestCheckpointerCopiesTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := OpenDB(SQLite, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t (x TEXT)"); err != nil {
		t.Fatal(err)
	}
	row := strings.Repeat("x", 1000)
	for i := 0; i < 2000; i++ { // about 500 pages, below SQLite's default 1,000
		if _, err := db.Exec("INSERT INTO t VALUES (?)", row); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1<<20 {
			break // the rows are in the database file
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file holds %d bytes after 10 s: nothing checkpointed the log", st.Size())
		}
		time.Sleep(20 * time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: the checkpointer did not stop")
	}
}

// A DB closed before it ever connected has no checkpointer to wait for.
func TestCheckpointerCloseUnused(t *testing.T) {
	db, err := OpenDB(SQLite, "file:"+filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
