from vidistill.synthesize.history import block_means


def test_block_means_average_each_term_where_it_was_logged():
    history = [{"it": i, "loss": float(i)} for i in range(6)]
    history[4]["extra"] = 1.0  # a term of some iterations only (VDSD's stage 2, say)
    history[5]["extra"] = 3.0
    curve = block_means(history, block=3)
    assert curve == {"it": [2, 5], "loss": [1.0, 4.0], "extra": [None, 2.0]}
    assert block_means(history, points=2) == curve
    assert block_means([]) == {}
