"""Command-line shells (blendclip-mine, -embed, -train, -eval): parse arguments, call blendclip_core."""
