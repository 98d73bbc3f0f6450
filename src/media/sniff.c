/* placeholder until the module lands */
void placeholder_sniff(void);
void placeholder_sniff(void) {}
