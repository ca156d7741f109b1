/* Compiled alone with -Wall -Wextra -pedantic -Werror: bulkup.h must stand
 * on its own, with no other include before it. */
#include <bulkup.h>

int bk_header_alone_check(void);
int bk_header_alone_check(void) {
  return (int)sizeof(bulkup_requests_settings) + (int)BULKUP_VERSION_HEX;
}
