"""Recipe: a Pahlavan wallet running dry."""

VIDEO = {"model": "veo-lite", "prompt": "Waves on a beach", "settings": {"duration_seconds": 2}}  # 10 cents


def test_the_second_video_is_refused_when_the_wallet_runs_dry(aigen_mock):
    aigen_mock.set_wallet("pahlavan", 10)  # cents, on the account of the seeded key

    first = aigen_mock.post("pahlavan", "/api/v1/videos/generations", json=VIDEO)
    assert first.status_code == 202  # accepted: its 10 cents are held until it finishes
    second = aigen_mock.post("pahlavan", "/api/v1/videos/generations", json=VIDEO)
    assert second.status_code == 402
    error = second.json()
    assert error["details"]["code"] == "INSUFFICIENT_BALANCE"

    aigen_mock.advance(60)  # the first video succeeds and is charged
    video = aigen_mock.get("pahlavan", f"/api/v1/videos/generations/{first.json()['id']}").json()
    assert (video["status"], video["final_charge_cents"]) == ("succeeded", 10)
    assert aigen_mock.wallet("pahlavan") == 0
