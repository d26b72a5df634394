"""The pyrun command line (Click): parse -> call the runtime -> print / exit code."""
