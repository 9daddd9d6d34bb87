/* Removing trees below a directory fd without ever following a symlink
 * out of them (layers, work directories, copied root filesystems). */
#pragma once

/* Remove a directory tree below parent_fd without following symlinks and
 * without crossing into another mount (rm -rf confined to the tree and
 * its file system; clears immutable-free trees only). A mount point in the
 * tree fails it with -EXDEV and nothing beneath the mount is removed. */
int remove_tree_at(int parent_fd, const char *name);
