"""Consumer upgrade links and the hosted upgrade page (docs/upgrade-page.md).

``upgrade_links.create_upgrade_link`` makes a signed, expiring link (``link_tokens``) for a subscription;
``consumer_page.UpgradePage`` renders ``GET /upgrade/<token>`` (``page_rendering``) with the offer chosen from the
upgrade catalogue (``upgrade_offers``) and CCBill's form.
"""
