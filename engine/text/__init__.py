"""Text models and text data: a built-in tokenizer and vocabulary, AG_NEWS-style CSV and
``text<TAB>label`` TSV readers, ``.vec`` word vectors, the BiLSTM classifier of reference seed 000 and
an optional Hugging Face BERT path (seed 002). Nothing here downloads."""
