"""``from sandd import Server`` for programs written for sandd: pythond's façade under sandd's name
(see pythond.sandd and clients/python/README.md for what differs). Installed by the pythond
package; leave it out (or uninstall pythond) where the original sandd is installed."""
from pythond.sandd import CommandResult, Server

__all__ = ["Server", "CommandResult"]
