/* placeholder main until the command line lands */
int main(void) { return 0; }
