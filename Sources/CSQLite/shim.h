// SQLite's online backup API, used to snapshot live databases consistently.
#include <sqlite3.h>
