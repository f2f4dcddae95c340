/*
 * damage.h - what the qgate command does about a damaged store
 * (damage.c).  It needs nothing else of the command: cli.c uses it, not
 * the other way round.
 */
#ifndef QG_DAMAGE_H
#define QG_DAMAGE_H

/* Exit codes of every subcommand. */
#define EXIT_OK     0 /* worked, found nothing wrong */
#define EXIT_FOUND  1 /* worked, found a problem (a refused delivery) */
#define EXIT_FAILED 2 /* usage, I/O or store failure */

/* Installs the last-resort guard: from cli_guard_store() on, a SIGBUS,
 * SIGSEGV or failed LMDB assertion prints the damage message and exits
 * EXIT_FAILED.  Called once by main(). */
void cli_guard_install(void);
void cli_guard_store(const char *db);
/* The store given to cli_guard_store() last, or NULL. */
const char *cli_guarded_store(void);
/* Says that the store db is damaged, where, and what to do; returns
 * EXIT_FAILED. */
int cli_store_damaged(const char *db, const char *detail);

#endif /* QG_DAMAGE_H */
