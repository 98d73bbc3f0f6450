/* placeholder until the module lands */
void placeholder_store_sqlite(void);
void placeholder_store_sqlite(void) {}
