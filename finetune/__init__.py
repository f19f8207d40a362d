"""Turns a Zendesk help centre and ticket history into QLoRA adapters (see issue: finetune)."""
