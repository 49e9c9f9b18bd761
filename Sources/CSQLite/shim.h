#include <sqlite3.h>

// sqlite3_db_config is variadic, which Swift cannot call: one wrapper per option used.

/// Closing the last connection leaves the write-ahead log as it is instead of copying it
/// into the database (two fsyncs, at the end of every `flow` command).
static inline int flow_sqlite3_no_checkpoint_on_close(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
}
