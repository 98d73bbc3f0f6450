/* placeholder until the module lands */
void placeholder_blob_local(void);
void placeholder_blob_local(void) {}
