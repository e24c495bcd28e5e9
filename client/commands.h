// Every boa-client command family, each in its own file, registering its commands in the
// table (client/command.h) in the order the help lists them.
#pragma once

#include "client/command.h"

namespace boa::client {

void AddFileCommands(CommandTable* table);        // compress, decompress, verify (file_commands.cc)
void AddInfoCommand(CommandTable* table);         // info (info_command.cc)
void AddEvalCommand(CommandTable* table);         // eval (eval_command.cc)
void AddModelCommands(CommandTable* table);       // model init|import|show (model_commands.cc)
void AddTrainCommand(CommandTable* table);        // train (train_command.cc)
void AddBenchCommand(CommandTable* table);        // bench (bench_command.cc)
void AddExperimentCommands(CommandTable* table);  // new-experiment, run (experiment_commands.cc)
void AddServerCommands(CommandTable* table);      // models ..., status, health, jobs ... (server_commands.cc)

}  // namespace boa::client
