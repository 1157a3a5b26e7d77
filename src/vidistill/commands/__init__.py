"""CLI sub-commands; each module adds its commands to :data:`vidistill.commands.app.main`."""
