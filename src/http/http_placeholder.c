/* placeholder until the module lands */
void placeholder_http_placeholder(void);
void placeholder_http_placeholder(void) {}
