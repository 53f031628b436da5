import { dropTestDatabases } from './database-target';

afterAll(() => dropTestDatabases());
