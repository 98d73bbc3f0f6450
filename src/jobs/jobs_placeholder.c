/* placeholder until the module lands */
void placeholder_jobs_placeholder(void);
void placeholder_jobs_placeholder(void) {}
