"""Turns a Zendesk help centre and past tickets into QLoRA adapters for `models/` (docs/finetune.md)."""
