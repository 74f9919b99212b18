/*
 * tools/stretch/commands.h - the subcommands of the `stretch` CLI and the
 * exit codes they share. Adding a command: write `int st_cmd_xyz(int argc,
 * char **argv)` in its own file (argv[0] is the command name), declare it
 * here and add a line to the table in main.c.
 */
#ifndef ST_CLI_COMMANDS_H
#define ST_CLI_COMMANDS_H

/* Exit codes: documented in `stretch --help` and docs/cli.md. */
enum {
    ST_EXIT_OK = 0,        /* success */
    ST_EXIT_USAGE = 1,     /* bad command line */
    ST_EXIT_MANIFEST = 2,  /* a manifest or parameter is wrong, a plugin is not found */
    ST_EXIT_LOAD = 3,      /* a plugin load was refused (or crashed while checked) */
    ST_EXIT_MODEL = 4,     /* a model or other input file is missing or malformed */
    ST_EXIT_RUNTIME = 5,   /* something failed while running */
    ST_EXIT_UNTESTED = 6   /* a plugin check could not run the plugin (a `requires:` unmet) */
};

typedef int (*st_cmd_fn)(int argc, char **argv);

typedef struct st_command {
    const char *name;
    st_cmd_fn fn;
    const char *summary;   /* one line for `stretch --help` */
} st_command;

/* The table lives in main.c; commands may list it (help). */
extern const st_command st_commands[];
extern const unsigned st_n_commands;

int st_cmd_plugins(int argc, char **argv);
int st_cmd_inspect(int argc, char **argv);
int st_cmd_check(int argc, char **argv);
int st_cmd_run(int argc, char **argv);
int st_cmd_chat(int argc, char **argv);
int st_cmd_tokenize(int argc, char **argv);
int st_cmd_eval(int argc, char **argv);
int st_cmd_bench(int argc, char **argv);
int st_cmd_serve(int argc, char **argv);
int st_cmd_bench_prefill(int argc, char **argv);
int st_cmd_retrieve(int argc, char **argv);
int st_cmd_embed(int argc, char **argv);
int st_cmd_devices(int argc, char **argv);

#endif
