"""Sen hardware: board profiles, the board simulator, flashing and hardware-in-the-loop tools."""
