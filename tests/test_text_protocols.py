"""Text and language models say what they provide as protocols (zoo.heads), not by duck typing."""
from __future__ import annotations

import zoo
from zoo.heads import LanguageModel, TextModel, is_language_model, text_tokenizer
from zoo.predict.texts import is_text_model


class Vocabulary:
    def __len__(self) -> int:
        return 3


class Classifier:
    """Reads text, predicts classes."""

    num_classes = 2

    def __init__(self, tokenizer=None):
        self.tokenizer = tokenizer


class NextToken(Classifier):
    """Reads text, predicts the next token."""

    num_classes = 3

    def continuations(self, prompt: str, k: int = 5, max_tokens: int = 20) -> list[tuple[str, float]]:
        return []

    def generate(self, prompt: str = "", max_new_tokens: int = 100, temperature: float = 1.0, top_k=None, seed=None) -> str:
        return ""

    def score(self, text: str) -> float:
        return 0.0


def test_an_image_model_is_no_text_model():
    model = zoo.load("mlp", pretrained=False)
    assert not isinstance(model, TextModel) and text_tokenizer(model) is None
    assert not is_text_model(model) and not is_language_model(model)


def test_a_text_model_declares_its_tokenizer_and_none_means_no_vocabulary():
    assert isinstance(Classifier(Vocabulary()), TextModel) and is_text_model(Classifier(Vocabulary()))
    assert isinstance(Classifier(), TextModel) and not is_text_model(Classifier())
    assert not isinstance(Classifier(Vocabulary()), LanguageModel)


def test_a_language_model_provides_continuations_generate_and_score_over_its_whole_vocabulary():
    model = NextToken(Vocabulary())
    assert isinstance(model, LanguageModel) and is_language_model(model)
    assert not is_language_model(NextToken())  # no vocabulary
    fine_tuned = NextToken(Vocabulary())
    fine_tuned.num_classes = 2  # a new head: classes, not next tokens
    assert not is_language_model(fine_tuned)


def test_the_rnn_family_s_language_models_follow_the_protocol():
    from zoo_rnn.generation import LanguageModel as RecurrentLanguageModel

    assert {"continuations", "generate", "score", "tokenizer"} <= set(dir(RecurrentLanguageModel))
