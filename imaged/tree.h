/* Removing trees below a directory fd without ever following a symlink
 * out of them (layers, work directories, copied root filesystems). */
#pragma once

/* Remove a directory tree below parent_fd without following symlinks
 * (rm -rf confined to the tree; clears immutable-free trees only). */
int remove_tree_at(int parent_fd, const char *name);
