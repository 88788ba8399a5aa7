"""Operations: settings, embedded services, migrations, release step, supervisor."""
