/*
 * tools/stretch/main.c - `stretch <command> [args]`: dispatch through the
 * command table below.
 */
#include <stdio.h>
#include <string.h>

#include <stretch/stretch.h>

#include "commands.h"


/* Add new subcommands here (and declare them in commands.h). */
const st_command st_commands[] = {
    {"plugins", st_cmd_plugins, "list every plugin found, with its status"},
    {"inspect", st_cmd_inspect, "show a plugin's metadata and parameters, and load-check it"},
    {"check", st_cmd_check, "validate a strategy manifest and load-check its plugins"},
    {"run", st_cmd_run, "generate text from a prompt with a strategy"},
    {"chat", st_cmd_chat, "a conversation with the model at the terminal"},
    {"tokenize", st_cmd_tokenize, "print the token ids (and pieces) of a text"},
    {"eval", st_cmd_eval, "evaluate a strategy (ppl: perplexity by position)"},
    {"bench", st_cmd_bench, "measure load time, prefill and decode speed, peak memory"},
    {"bench-prefill", st_cmd_bench_prefill, "prefill mixed-length prompts three ways"},
    {"serve", st_cmd_serve, "serve the manifests as models over an OpenAI-compatible HTTP API"},
    {"retrieve", st_cmd_retrieve, "build a retriever's index from files, or query one"},
    {"embed", st_cmd_embed, "sentence vectors from a BERT-family encoder (MiniLM)"},
    {"devices", st_cmd_devices, "list the OpenCL platforms and devices a strategy can use"},
};
const unsigned st_n_commands = sizeof st_commands / sizeof st_commands[0];

static void usage(FILE *f)
{
    fprintf(f, "usage: stretch <command> [options]\n"
               "       stretch <command> --help\n"
               "       stretch --version\n\ncommands:\n");
    for (unsigned i = 0; i < st_n_commands; i++)
        fprintf(f, "  %-13s %s\n", st_commands[i].name, st_commands[i].summary);
    fprintf(f, "\nexit codes:\n"
               "  0  success\n"
               "  1  usage error (bad command line)\n"
               "  2  manifest or parameter error (or plugin not found)\n"
               "  3  plugin load refused\n"
               "  4  model or file error\n"
               "  5  runtime error\n"
               "\nenvironment:\n"
               "  STRETCH_PLUGIN_PATH  colon-separated plugin directories, searched\n"
               "                       after a strategy's plugin-dirs and before the\n"
               "                       built-in directory\n"
               "  STRETCH_LOG          plugin log threshold: debug, info, warn, error\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return ST_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("stretch %s (plugin ABI %u.%u)\n", st_version(), st_abi_version() / 1000u,
               st_abi_version() % 1000u);
        return ST_EXIT_OK;
    }
    for (unsigned i = 0; i < st_n_commands; i++)
        if (strcmp(cmd, st_commands[i].name) == 0)
            return st_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "stretch: unknown command '%s' (try stretch --help)\n", cmd);
    return ST_EXIT_USAGE;
}
