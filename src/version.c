#include "internal.h"

unsigned int bulkup_version(void) { return BULKUP_VERSION_HEX; }

const char *bulkup_version_string(void) { return BULKUP_VERSION_STRING; }
