package discord

import (
	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/commands"
)

// deployCommand is /deploy: one string option with the command text, so a
// slash command reads exactly like a message command or a terminal line.
func deployCommand() *discordgo.ApplicationCommand {
	guildOnly := []discordgo.InteractionContextType{discordgo.InteractionContextGuild}
	return &discordgo.ApplicationCommand{
		Name:        CommandName,
		Type:        discordgo.ChatApplicationCommand,
		Description: "Import, inspect and roll back OpenShift image-stream deployments (try: help)",
		Contexts:    &guildOnly,
		Options: []*discordgo.ApplicationCommandOption{{
			Type:         discordgo.ApplicationCommandOptionString,
			Name:         commandOption,
			Description:  "What to do, e.g. status prod, import prod worker, approve #ID, help",
			Required:     true,
			Autocomplete: true,
		}},
	}
}

// commandNames are what the first word of a command may be.
func commandNames() []string {
	var names []string
	for _, c := range commands.Commands() {
		names = append(names, c.Name)
	}
	return names
}
