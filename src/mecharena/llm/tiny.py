"""A small causal LM built on this machine (no model hub): a byte-level BPE tokenizer trained on a
corpus and a randomly initialised Llama. The training benchmark and the tests train it.
"""

from pathlib import Path

# Every assistant turn ends with the end-of-sequence token, so that fine-tuning teaches the model to stop.
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                 "{% if m['role'] == 'assistant' %}<eos>{% endif %}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
SPECIALS = ("<pad>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>")


def build_tiny(folder: str | Path, corpus: list[str], *, vocab: int = 1024, hidden: int = 64, layers: int = 2,
               context: int = 4096, tie: bool = True, seed: int = 0) -> Path:
    """Write a tokenizer trained on ``corpus`` and a random ``layers``-layer Llama into ``folder``
    (``tie``: the output layer shares the embedding's weights)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab, special_tokens=list(SPECIALS),
                                                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context,
                         pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id, tie_word_embeddings=tie)
    folder = Path(folder)
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


__all__ = ["CHAT_TEMPLATE", "build_tiny"]
